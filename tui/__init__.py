"""The Textual dashboard (empty until the dashboard issue lands)."""
