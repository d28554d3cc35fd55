"""Real coded texts: import (built-in presets and generic CSV), the train/test split, classical augmentation."""
