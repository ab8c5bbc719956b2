"""Docstore: user accounts plus a queryable JSON document store on MongoDB."""
