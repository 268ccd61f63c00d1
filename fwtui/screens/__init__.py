"""The app's screens: setup, dashboard, and the modals."""
