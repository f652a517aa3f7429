import sys
from pathlib import Path

# tests/ helpers (torch_reference, test_golden) import each other by module name
sys.path.insert(0, str(Path(__file__).parent))
