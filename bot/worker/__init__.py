"""The worker process: leader election and periodic jobs."""
