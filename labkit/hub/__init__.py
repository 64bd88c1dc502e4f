"""A class on one JupyterHub: learner accounts, each learner's server and sandbox, the hub's configuration.

`accounts` (the instructor's `labkit class hub-learners`), `singleuser` (a learner's server, as the learner),
`cleanup` (nothing of a learner outlives their server), `config` (JupyterHub's settings), `setup` and `launch`
(`make hub`). Kubernetes (Zero to JupyterHub) is in deploy/kubernetes.
"""
