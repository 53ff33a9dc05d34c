"""engine.ui"""
