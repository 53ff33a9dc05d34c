"""engine.llm"""
