-- Athena / Glue table over Sluice's Parquet archive (SLUICE_S3_FORMAT=parquet, hive key
-- template), with partition projection: no crawler and no MSCK REPAIR needed. Replace the bucket
-- and prefix. The columns are worker/events/parquet_schema.py's (tests/unit/test_deploy_files.py checks
-- them): timestamps are Parquet TIMESTAMP(MILLIS, UTC), context/properties/traits/integrations,
-- firehose_attributes and the record's headers JSON text (columns that came later are last; files
-- written before them read them as null). Only `*.parquet` objects are read; the bucket's
-- `_sluice/` markers stay outside.
CREATE EXTERNAL TABLE IF NOT EXISTS sluice_events_parquet (
  event_id         string,
  `type`           string,
  event            string,
  name             string,
  user_id          string,
  anonymous_id     string,
  group_id         string,
  previous_id      string,
  `timestamp`      timestamp,
  received_at      timestamp,
  sent_at          timestamp,
  context          string,
  properties       string,
  traits           string,
  integrations     string,
  source_id        string,
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
  original_timestamp timestamp,
  source_name      string,
  log_group        string,
  log_stream       string,
  message          string,
  firehose_source_arn string,
  firehose_attributes string,
  headers          string
)
PARTITIONED BY (year string, month string, day string, hour string)
STORED AS PARQUET
LOCATION 's3://acme-event-archive/logs/'
TBLPROPERTIES (
  'projection.enabled'      = 'true',
  'projection.year.type'    = 'integer', 'projection.year.range'  = '2024,2099', 'projection.year.digits' = '4',
  'projection.month.type'   = 'integer', 'projection.month.range' = '1,12',      'projection.month.digits' = '2',
  'projection.day.type'     = 'integer', 'projection.day.range'   = '1,31',      'projection.day.digits' = '2',
  'projection.hour.type'    = 'integer', 'projection.hour.range'  = '0,23',      'projection.hour.digits' = '2',
  'storage.location.template' = 's3://acme-event-archive/logs/year=${year}/month=${month}/day=${day}/hour=${hour}/'
);

-- Traffic per usage plan today, and revenue from inside `properties` (JSON text):
-- SELECT usage_plan_name, count(*) FROM sluice_events_parquet
-- WHERE year = '2026' AND month = '11' AND day = '22' AND "type" = 'access_log' GROUP BY 1 ORDER BY 2 DESC;
-- SELECT event, sum(CAST(json_extract_scalar(properties, '$.revenue') AS double)) AS revenue
-- FROM sluice_events_parquet WHERE year = '2026' AND month = '11' AND "type" = 'track' GROUP BY 1;
-- SELECT date_trunc('hour', "timestamp") AS hour, count(*) FROM sluice_events_parquet
-- WHERE year = '2026' AND month = '11' AND day = '22' GROUP BY 1 ORDER BY 1;
