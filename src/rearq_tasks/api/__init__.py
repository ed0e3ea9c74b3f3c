"""The REST API under ``/cfg/tasks/``: a surface, importing the layers below, never admin or ops."""
