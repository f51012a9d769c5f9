"""Driver availability: going online and offline, and where a driver last was."""
