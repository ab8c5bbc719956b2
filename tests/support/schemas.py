"""Collection schemas several test modules declare."""

from __future__ import annotations

TASKS_SCHEMA = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "type": "object",
    "required": ["title", "status"],
    "properties": {
        "title": {"type": "string", "minLength": 1, "maxLength": 200},
        "status": {"enum": ["todo", "doing", "done"]},
        "due": {"type": "string", "format": "date-time"},
        "owner_email": {"type": "string", "format": "email"},
        "assignee": {"$ref": "#/$defs/person"},
        "checklist": {
            "type": "array",
            "items": {
                "type": "object",
                "required": ["text"],
                "properties": {"text": {"type": "string"}, "done": {"type": "boolean"}},
            },
        },
        "subtask": {"$ref": "#/$defs/sub-task"},
        "meta": {
            "type": "object",
            "properties": {"priority": {"type": "integer", "minimum": 1, "maximum": 5}},
        },
    },
    "$defs": {
        "person": {
            "type": "object",
            "required": ["name"],
            "properties": {"name": {"type": "string"}, "email": {"type": "string"}},
        },
        "sub-task": {
            "type": "object",
            "properties": {"title": {"type": "string"}, "next": {"$ref": "#/$defs/sub-task"}},
        },
    },
}


NOTES_SCHEMA = {
    "type": "object",
    "required": ["title"],
    "properties": {
        "title": {"type": "string"},
        "tags": {"type": "array", "items": {"type": "string"}},
        "same_as_title": {"$ref": "#/properties/title"},
    },
    "additionalProperties": False,
}
