"""Pure rules: functions of data and ``now``. Imports no SDK (checked by a test)."""
