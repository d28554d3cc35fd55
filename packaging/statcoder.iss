; Inno Setup script: a Windows installer from the PyInstaller one-folder bundle (dist\statcoder\).
;
; NOT TESTED: statcoder is built and tested on Linux only. Build steps (docs/readme/packaging.md):
;   1. On Windows 10/11 x64 with Python 3.11 and the Visual Studio Build Tools (C++), in the repository:
;        py -3.11 -m venv .venv
;        .venv\Scripts\pip install -e ".[packaging]"
;   2. .venv\Scripts\python -m PyInstaller --noconfirm --clean packaging\statcoder.spec
;      (optionally: ... packaging\statcoder.spec -- --model C:\path\to\model.gguf)
;   3. iscc /DAppVersion=0.1.0 packaging\statcoder.iss
;      -> dist\statcoder-0.1.0-windows-x64-setup.exe
; The installer needs no network; neither does the app.

#ifndef AppVersion
  #define AppVersion "0.1.0"
#endif

[Setup]
AppId={{6E0B7C52-3F0A-4D35-9B0E-5A0C9D6B8A41}
AppName=statcoder
AppVersion={#AppVersion}
AppPublisher=statcoder developers
DefaultDirName={autopf}\statcoder
DefaultGroupName=statcoder
DisableProgramGroupPage=yes
LicenseFile=..\LICENSE
OutputDir=..\dist
OutputBaseFilename=statcoder-{#AppVersion}-windows-x64-setup
Compression=lzma2/max
SolidCompression=yes
ArchitecturesAllowed=x64compatible
ArchitecturesInstallIn64BitMode=x64compatible
; Per-machine by default (IT-managed PCs); an admin can still choose a per-user install.
PrivilegesRequired=admin
PrivilegesRequiredOverridesAllowed=dialog
UninstallDisplayIcon={app}\statcoder-desktop.exe
ChangesEnvironment=yes

[Tasks]
Name: "desktopicon"; Description: "Create a desktop shortcut"; Flags: unchecked
Name: "addtopath"; Description: "Add the statcoder command to PATH"; Flags: unchecked

[Files]
Source: "..\dist\statcoder\*"; DestDir: "{app}"; Flags: ignoreversion recursesubdirs createallsubdirs

[Icons]
Name: "{group}\statcoder"; Filename: "{app}\statcoder-desktop.exe"
Name: "{group}\statcoder command prompt"; Filename: "{cmd}"; Parameters: "/k ""{app}\statcoder.exe"" --help"; WorkingDir: "{userdocs}"
Name: "{group}\Uninstall statcoder"; Filename: "{uninstallexe}"
Name: "{autodesktop}\statcoder"; Filename: "{app}\statcoder-desktop.exe"; Tasks: desktopicon

[Registry]
; Machine-wide PATH, so only in an administrative install.
Root: HKLM; Subkey: "SYSTEM\CurrentControlSet\Control\Session Manager\Environment"; ValueType: expandsz; ValueName: "Path"; ValueData: "{olddata};{app}"; Tasks: addtopath; Check: IsAdminInstallMode and NeedsAddPath(ExpandConstant('{app}'))

[Run]
Filename: "{app}\statcoder-desktop.exe"; Description: "Start statcoder"; Flags: nowait postinstall skipifsilent

[Code]
function NeedsAddPath(Dir: string): Boolean;
var
  Path: string;
begin
  if not RegQueryStringValue(HKEY_LOCAL_MACHINE,
      'SYSTEM\CurrentControlSet\Control\Session Manager\Environment', 'Path', Path) then
  begin
    Result := True;
    exit;
  end;
  Result := Pos(';' + Uppercase(Dir) + ';', ';' + Uppercase(Path) + ';') = 0;
end;
