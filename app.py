"""TMU dashboard (placeholder until the dashboard pages land)."""
import streamlit as st

st.title("Twin Machine Unlearning")
st.write("Run `python -m tmu_core --help` for the command line.")
