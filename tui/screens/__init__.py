"""Dashboard screens: help, action dialogs, quit confirmation."""
