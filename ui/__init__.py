"""Streamlit helpers shared by the pages (the library itself never imports Streamlit)."""
