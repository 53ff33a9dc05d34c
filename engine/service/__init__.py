"""engine.service"""
