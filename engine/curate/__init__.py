"""Curation of synthetic samples: rules that flag with reasons, a label check, balance; nothing is deleted."""

from engine.curate.labelcheck import Check, Checker, LabelCheckOptions, fasttext_checker, label_check
from engine.curate.review import (FlagCount, FlagView, accepted_samples, clear_user_status, export_curated,
                                  flag_counts, list_flags, override_flag, set_sample_status, status_counts,
                                  uncurated_samples)
from engine.curate.methods import METHOD_RULES, MethodOptions
from engine.curate.rules import GarbageLimits, Hit, Sample, compare_key, garbage_reason, make_sample, note_lines
from engine.curate.store import (ALL_RULES, default_label_check, DEFAULT_RELABEL, DEFAULT_REJECT, BalanceReport, CurationOptions, CurationResult, balance_report,
                    curate)

__all__ = [
    "ALL_RULES", "default_label_check", "DEFAULT_RELABEL", "DEFAULT_REJECT", "BalanceReport", "Check", "Checker", "CurationOptions", "CurationResult",
    "FlagCount", "FlagView", "METHOD_RULES", "MethodOptions", "GarbageLimits", "Hit", "LabelCheckOptions", "Sample", "accepted_samples",
    "balance_report", "clear_user_status", "compare_key", "curate", "export_curated", "fasttext_checker",
    "flag_counts", "garbage_reason", "label_check", "list_flags", "make_sample", "note_lines", "override_flag",
    "set_sample_status", "status_counts", "uncurated_samples",
]
