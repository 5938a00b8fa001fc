"""Feature tables as Dagster assets built by dbt, validated by pandera, served from DynamoDB."""

import warnings

# With pyspark installed (the `spark` extra), `import pandera` imports pyspark.pandas, which
# warns that pandas 3 is "not yet fully supported". The Spark engine hands Spark Arrow
# tables, never pandas frames, so the warning says nothing to a user.
warnings.filterwarnings(
    "ignore", message="PySpark does not yet fully support pandas", category=FutureWarning
)
