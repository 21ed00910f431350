"""Twin Machine Unlearning (TMU): the science behind the dashboard.

Data and model registries, the training engine, TMU's twin problem, features and classifier, the
unlearning methods, metrics and the run store. Never imports streamlit or plotly.
"""
