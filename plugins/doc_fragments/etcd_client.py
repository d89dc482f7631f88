# -*- coding: utf-8 -*-
"""Options shared by the modules that talk to etcd through etcdctl (action group etcd)."""
from __future__ import annotations


class ModuleDocFragment:
    DOCUMENTATION = r"""
options:
  endpoints:
    description:
      - Client URLs to reach the cluster through, for example V(https://10.0.0.1:2379).
      - Give several so a call still works when one member is down.
    type: list
    elements: str
    required: true
  cacert:
    description: CA bundle used to verify the etcd server certificates (C(--cacert)).
    type: path
  cert:
    description: Client certificate (C(--cert)). Give O(key) with it.
    type: path
  key:
    description: Private key of the client certificate (C(--key)).
    type: path
  etcdctl:
    description: Path of the etcdctl binary on the managed host.
    type: path
    default: /usr/local/bin/etcdctl
  dial_timeout:
    description: etcdctl C(--dial-timeout) for every call.
    type: str
    default: 3s
  command_timeout:
    description:
      - etcdctl C(--command-timeout) for every call.
      - An unreachable member costs about this long once.
    type: str
    default: 5s
notes:
  - These options are usually set once for the whole play with
    C(module_defaults) and the action group C(group/controlplane.etcd.etcd).
  - ETCDCTL_ENDPOINTS, ETCDCTL_CACERT, ETCDCTL_CERT, ETCDCTL_KEY, ETCDCTL_DIAL_TIMEOUT,
    ETCDCTL_COMMAND_TIMEOUT and ETCDCTL_WRITE_OUT are removed from the environment of the
    etcdctl calls, because etcdctl aborts when a setting comes from both the environment
    (even an empty value) and a flag. ETCDCTL_USER and ETCDCTL_PASSWORD still apply.
requirements:
  - etcdctl 3.4 or later on the managed host
"""
