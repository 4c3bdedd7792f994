"""The one settings model of a deployment and what is generated from it."""
