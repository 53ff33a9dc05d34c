"""engine.propose"""
