"""engine.search"""
