"""Placeholder: filled by the component issues."""
