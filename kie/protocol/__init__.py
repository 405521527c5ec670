"""The sans-IO protocol layer: plain functions and generator flows that build requests and parse
answers. Nothing here opens a socket; `kie.client` drives it over httpx.
"""
