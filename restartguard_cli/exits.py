"""Exit codes of every command (contract): 0 success / clear, 1 failure / unplanned restarts, 2 usage,
configuration, or nothing readable to judge from."""

EXIT_OK, EXIT_FAIL, EXIT_USAGE = 0, 1, 2
