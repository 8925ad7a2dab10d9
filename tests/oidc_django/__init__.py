"""A packaged OpenID Connect provider for the single sign-on tests: django-oidc-provider in a
minimal Django project (tests/test_sso_packaged.py; docs/sso.md, "How it is tested").

`provider.py` runs it: Django configured in this process (`settings.py`), its SQLite database
migrated in a temporary directory, and served by uvicorn on a loopback port in a thread.
`directory.py` holds its keys, its client and its people (through Django's ORM), `claims.py` the
two documented hooks that put the person's claims in the ID token, `wire.py` what a test may do
to an answer on its way out, and `templates/` the sign-in page the tests' browser fills in.
"""
