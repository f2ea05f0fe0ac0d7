"""One module per page family; each exports its handlers, wired to routes in `app.py`."""
