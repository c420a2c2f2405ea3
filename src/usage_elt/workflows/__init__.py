"""The workflows: chains of steps, each run recorded in one status document."""
