-- MTA's daily subway ridership estimate, every day published (one small object).
select cast(date as date) as date, subways_total_estimated_ridership as entries_official,
       subways_of_comparable_pre_pandemic_day as share_of_pre_pandemic, source_dataset
from {{ lake_relation('official_daily') }}
