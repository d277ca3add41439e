"""The hub: every customer, agent and supervisor connects here (headless; no Textual)."""
