"""The TaskQueue dashboard (`kube-taskqueue dashboard`): TaskQueues, their queues and
processors, dead letters to look at, redrive and purge — served locally with the user's
kubeconfig and AWS credentials, as kubectl or k9s work. Installed with the `dashboard` extra;
the processor core never imports it."""
