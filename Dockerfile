FROM python:3.11-slim
WORKDIR /app
COPY pyproject.toml README.md ./
COPY reviewer ./reviewer
COPY prompts ./prompts
COPY migrations ./migrations
COPY reviewer.example.yml ./
RUN pip install --no-cache-dir . && useradd --create-home reviewer
USER reviewer
WORKDIR /home/reviewer
ENV REVIEWER_CONFIG=/config/reviewer.yml
ENTRYPOINT ["reviewer"]
CMD ["--log-level", "info", "run"]
