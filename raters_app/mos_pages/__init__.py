"""The pages of the rater app, one module each, and `common` (configuration, the shared rating widget).

Every page is a `render()` function that only draws UI and calls `sreval.study`; `app.py` picks the page.
"""
