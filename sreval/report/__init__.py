"""Plotly figures and HTML reports."""
