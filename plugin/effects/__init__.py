"""Built-in effects. Each module says why its effect is written here rather than wrapped."""
