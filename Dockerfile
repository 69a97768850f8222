FROM python:3.12-slim
WORKDIR /app
COPY pyproject.toml README.md ./
COPY jobd ./jobd
COPY migrations ./migrations
COPY web ./web
RUN pip install --no-cache-dir .
RUN useradd --system jobd
USER jobd
EXPOSE 8081
# Both URLs come from compose.yaml, so no embedded servers start in the container.
CMD ["jobd", "serve"]
