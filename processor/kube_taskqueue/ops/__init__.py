"""Operations tools: look into dead-letter queues, redrive and purge them (`kube-taskqueue dlq`).

Built on the same SQS client as the processor; never imports the runtime or the CLI.
"""
