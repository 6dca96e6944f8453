"""The host-side Docker tools: the instance's own containers, image building, validation, doctor."""
