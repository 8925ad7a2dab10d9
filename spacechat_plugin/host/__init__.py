"""Hosts: what runs agents and calls the hooks.

`embedded` runs agents in this process (the default of `spacechat serve`); `bridge` fronts a
running Rust Spacebot over its HTTP API. A host reaches the plugin only through hook calls and
never imports `api/` or `store/`.
"""
