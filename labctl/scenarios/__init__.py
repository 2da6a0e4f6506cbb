"""Built-in scenarios: the incidents the lab exists for, as TOML files (DESIGN section 8)."""
