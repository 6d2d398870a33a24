"""What zkpy does with each ZooKeeper 3.8 setting it does not implement (zookeeperAdmin).

A setting is named here as in zoo.cfg, without the `zookeeper.` prefix its system property
carries (QuorumPeerConfig turns a zoo.cfg key `k` into the property `zookeeper.k`), so
`skipACL=yes` in zoo.cfg and `-Dzookeeper.skipACL=yes` are one setting.

- REFUSED: settings whose value, ignored, would leave a server less secure or less durable
  than its operator asked for: the start stops with one line (exit code 2).
- UNUSED: tuning knobs of ZooKeeper's own machinery (its thread pools, caches, NIO/Netty,
  throttles, file layout) that zkpy's design has no counterpart for: one warning at start.

The implemented settings are parsed in config.py; TLS (`secureClientPort`, `ssl.*`, x509) is
config.py's TLS block's.
"""

from __future__ import annotations

from collections.abc import Callable


def _true(value: str) -> bool:
    return value.strip().lower() in ("true", "yes", "1")


def _false(value: str) -> bool:
    return value.strip().lower() in ("false", "no", "0")


def _always(value: str) -> bool:
    return True


# setting -> (refused when its value ..., why, in the line the operator reads)
REFUSED: dict[str, tuple[Callable[[str], bool], str]] = {
    "skipACL": (_true, "zkpy always checks ACLs; remove skipACL"),
    "portUnification": (_true, "zkpy has no TLS on the plaintext client port: TLS clients use secureClientPort"),
    "client.portUnification": (_true, "zkpy has no TLS on the plaintext client port: TLS clients use "
                                      "secureClientPort"),
    "DigestAuthenticationProvider.enabled": (_false, "zkpy cannot turn the digest scheme off"),
    "DigestAuthenticationProvider.digestAlg": (
        lambda v: v.strip().upper() not in ("SHA1", "SHA-1"), "zkpy's digest scheme is SHA1 only"),
    "enforceQuota": (_true, "zkpy does not enforce quotas"),
    "audit.enable": (_true, "zkpy writes no audit log"),
    "dynamicConfigFile": (_always, "zkpy has no dynamic reconfiguration: put the server.N lines in zoo.cfg"),
}

_UNUSED_GROUPS: dict[str, tuple[str, ...]] = {
    "zkpy's log writer sizes and rolls its own files": (
        "preAllocSize", "snapSizeLimitInKb", "txnLogSizeLimitInKb", "commitLogCount", "fsync.warningthresholdms",
        "snapshot.compression.method", "snapshot.trust.empty", "flushDelay", "maxWriteQueuePollTime", "maxBatchSize",
        "digest.enabled", "closeSessionTxn.enabled"),
    "zkpy serves from one event loop, without ZooKeeper's thread pools, caches and NIO/Netty factories": (
        "serverCnxnFactory", "clientCnxnSocket", "nio.numSelectorThreads", "nio.numWorkerThreads",
        "commitProcessor.numWorkerThreads", "commitProcessor.maxReadBatchSize", "commitProcessor.maxCommitBatchSize",
        "maxResponseCacheSize", "maxGetChildrenResponseCacheSize", "watchManagerName", "watcherCleanThreadsNum",
        "watcherCleanThreshold", "watcherCleanIntervalInSeconds", "maxInProcessingDeadWatchers", "bitHashCacheSize",
        "netty.advancedFlowControl.enabled", "advancedFlowControlEnabled", "netty.server.outstandingHandshake.limit",
        "outstandingHandshake.limit", "clientPortListenBacklog", "tcpKeepAlive", "clientTcpKeepAlive",
        "messageTracker.BufferSize", "messageTracker.Enabled", "enableEagerACLCheck", "jute.maxbuffer.extrasize",
        "largeRequestMaxBytes", "largeRequestThreshold", "emulate353TTLNodes", "znode.container.maxNeverUsedIntervalMs"),
    "zkpy bounds clients by maxClientCnxns, maxCnxns and globalOutstandingLimit only": (
        "connectionMaxTokens", "connectionTokenFillTime", "connectionTokenFillCount", "connectionFreezeTime",
        "connectionDropIncrease", "connectionDropDecrease", "connectionDecreaseRatio",
        "connection_throttle_tokens", "connection_throttle_fill_time", "connection_throttle_fill_count",
        "connection_throttle_freeze_time", "connection_throttle_drop_increase", "connection_throttle_drop_decrease",
        "connection_throttle_decrease_ratio", "connection_throttle_weight_enabled",
        "connection_throttle_global_session_weight", "connection_throttle_local_session_weight",
        "connection_throttle_renew_session_weight", "requestThrottleLimit", "requestThrottleStallTime",
        "requestThrottleDropStale", "requestStaleLatencyCheck", "requestStaleConnectionCheck",
        "request_throttle_max_requests", "request_throttle_stall_time", "request_throttle_drop_stale",
        "request_stale_latency_check", "request_stale_connection_check", "request_throttler.shutdownTimeout",
        "throttledOpWaitTime", "throttled_op_wait_time"),
    "zkpy's ZAB has its own timers and peer links": (
        "electionAlg", "cnxTimeout", "quorumCnxnTimeoutMs", "electionPortBindRetry", "fastleader.minNotificationInterval",
        "fastleader.maxNotificationInterval", "maxTimeToWaitForEpoch", "leader.maxTimeToWaitForEpoch",
        "connectToLearnerMasterLimit", "leaderServes", "observerMasterPort", "observer.reconnectDelayMs",
        "observer.election.DelayMs", "syncEnabled", "observer.syncEnabled", "maxConcurrentSnapSyncs",
        "maxConcurrentDiffSyncs", "leader.maxConcurrentSnapSyncs", "leader.maxConcurrentDiffSyncs",
        "learner.closeSocketAsync", "leader.closeSocketAsync", "learner.asyncSending",
        "forward_learner_requests_to_commit_processor_disabled", "follower.skipLearnerRequestToNextProcessor",
        "multiAddress.enabled", "multiAddress.reachabilityCheckTimeoutMs", "multiAddress.reachabilityCheckEnabled",
        "standaloneEnabled", "quorum.cnxn.threads.size",
        "quorum.auth.kerberos.servicePrincipal"),
    "zkpy has no local sessions or reconfiguration yet": (
        "localSessionsEnabled", "localSessionsUpgradingEnabled", "reconfigEnabled", "audit.impl.class"),
    "zkpy's admin server is plain HTTP on the event loop, without idle timeouts or HTTPS": (
        "admin.idleTimeout", "admin.forceHttps", "admin.portUnification"),
    "zkpy's metrics are read when scraped, without the Prometheus provider's worker pool or JVM metrics": (
        "metricsProvider.exportJvmInfo", "metricsProvider.numWorkerThreads", "metricsProvider.maxQueueSize",
        "metricsProvider.workerShutdownTimeoutMs"),
    "zkpy closes every connection whose SASL authentication fails, and a sasl id matches only itself": (
        "allowSaslFailedClients", "letAnySaslUserDoX"),
    "zkpy's SASL is DIGEST-MD5 only, without Kerberos": (
        "kerberos.removeHostFromPrincipal", "kerberos.removeRealmFromPrincipal", "kerberos.canonicalizeHostNames",
        "ensembleAuthName"),
}
# setting -> why zkpy does not need it
UNUSED: dict[str, str] = {key: why for why, keys in _UNUSED_GROUPS.items() for key in keys}


def short_name(key: str) -> str:
    """A system property's setting name: `zookeeper.skipACL` -> `skipACL`."""
    return key.removeprefix("zookeeper.")
