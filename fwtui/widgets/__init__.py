"""The app's widgets: they render what they are given and compute nothing."""
