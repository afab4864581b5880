"""The example app of examples/app: tasks that report what they processed to a results queue."""
