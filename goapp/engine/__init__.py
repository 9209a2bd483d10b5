"""Go engines: the GTP client (GNU Go) and, later, the KataGo supervisor."""
