"""The Bettensor miner's terminal app (Textual): screens, widgets, command line."""
