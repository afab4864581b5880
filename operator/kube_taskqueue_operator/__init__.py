"""The TaskQueue operator: the resource's models, validation, rendering, and kopf handlers."""
