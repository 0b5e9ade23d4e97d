"""Documents for people: the review document of a change and the record sheet of a run."""
