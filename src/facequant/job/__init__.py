"""One job of a sweep: the stages in order, their artifacts, and the sweep that runs the jobs."""
