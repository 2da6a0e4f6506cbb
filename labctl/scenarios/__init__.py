"""Built-in scenarios: the incidents the lab exists for, as TOML files (docs/scenarios.md)."""
