-- Athena / Glue table over Sluice's S3 archive (hive key template, NDJSON), with partition
-- projection: no crawler and no MSCK REPAIR needed. Replace the bucket and prefix.
-- Every document field is a column (tests/unit/test_deploy_files.py checks them against the
-- document model): timestamps are the documents' ISO-8601 text; context, properties, traits,
-- integrations and the record's headers are objects the JSON SerDe gives as their JSON text
-- (json_extract_scalar(properties, '$.revenue')).
CREATE EXTERNAL TABLE IF NOT EXISTS sluice_events (
  event_id         string,
  `type`           string,
  event            string,
  name             string,
  user_id          string,
  anonymous_id     string,
  group_id         string,
  previous_id      string,
  `timestamp`      string,
  received_at      string,
  sent_at          string,
  original_timestamp string,
  context          string,
  properties       string,
  traits           string,
  integrations     string,
  source_id        string,
  source_name      string,
  log_group        string,
  log_stream       string,
  message          string,
  firehose_source_arn string,
  firehose_attributes string,
  request_id       string,
  ip               string,
  http_method      string,
  resource_path    string,
  path             string,
  protocol         string,
  status           bigint,
  response_length  bigint,
  api_id           string,
  stage            string,
  api_key_id       string,
  user_agent       string,
  customer_id      string,
  customer_name    string,
  usage_plan_id    string,
  usage_plan_name  string,
  api_key_name     string,
  enriched         boolean,
  input_format     string,
  kafka            struct<topic:string, `partition`:int, `offset`:bigint, batch_index:int>,
  headers          string
)
PARTITIONED BY (year string, month string, day string, hour string)
ROW FORMAT SERDE 'org.openx.data.jsonserde.JsonSerDe'
WITH SERDEPROPERTIES ('ignore.malformed.json' = 'false')
LOCATION 's3://acme-event-archive/logs/'
TBLPROPERTIES (
  'projection.enabled'      = 'true',
  'projection.year.type'    = 'integer', 'projection.year.range'  = '2024,2099', 'projection.year.digits' = '4',
  'projection.month.type'   = 'integer', 'projection.month.range' = '1,12',      'projection.month.digits' = '2',
  'projection.day.type'     = 'integer', 'projection.day.range'   = '1,31',      'projection.day.digits' = '2',
  'projection.hour.type'    = 'integer', 'projection.hour.range'  = '0,23',      'projection.hour.digits' = '2',
  'storage.location.template' = 's3://acme-event-archive/logs/year=${year}/month=${month}/day=${day}/hour=${hour}/'
);

-- Traffic per usage plan this month:
-- SELECT usage_plan_name, count(*) FROM sluice_events
-- WHERE year = '2026' AND month = '11' AND "type" = 'access_log' GROUP BY 1 ORDER BY 2 DESC;
