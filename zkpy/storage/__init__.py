"""Storage formats and files: the transaction log, snapshots, recovery and the log writer."""
