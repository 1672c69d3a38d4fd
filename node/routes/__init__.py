"""HTTP routes, one module per API. Each module exposes ``routes`` (a RouteTableDef);
node/app.py registers every module listed in ``ROUTE_MODULES`` there.
"""
