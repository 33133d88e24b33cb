"""Where measurements live: the run record, its folder layout on disk, and the schemas it is checked against."""
