"""Documentation flags point at an encounter (and optionally one of its
administrations or access sites), one kind per named check; SweepRun claims
a sweep period. Existing flags (all "still_running", on administrations) get
their administration's encounter."""

import django.db.models.deletion
import django.utils.timezone
from django.db import migrations, models


def fill_encounter(apps, schema_editor):
    DocumentationFlag = apps.get_model("charting", "DocumentationFlag")
    Administration = apps.get_model("charting", "Administration")
    DocumentationFlag.objects.filter(encounter__isnull=True).update(
        encounter=models.Subquery(Administration.objects.filter(pk=models.OuterRef("administration")).values("encounter")[:1])
    )


class Migration(migrations.Migration):

    dependencies = [
        ('charting', '0003_vials_and_waste'),
    ]

    operations = [
        migrations.CreateModel(
            name='SweepRun',
            fields=[
                ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                ('period_start', models.DateTimeField(blank=True, null=True)),
                ('started_at', models.DateTimeField()),
                ('finished_at', models.DateTimeField()),
                ('opened', models.PositiveIntegerField(default=0)),
                ('resolved', models.PositiveIntegerField(default=0)),
                ('still_open', models.PositiveIntegerField(default=0, help_text='Open flags after the sweep.')),
            ],
            options={
                'ordering': ['-started_at'],
            },
        ),
        migrations.AlterModelOptions(
            name='documentationflag',
            options={'ordering': ['created_at', 'pk']},
        ),
        migrations.RemoveConstraint(
            model_name='documentationflag',
            name='flag_one_open_per_record_kind',
        ),
        migrations.RemoveConstraint(
            model_name='documentationflag',
            name='flag_kind_valid',
        ),
        migrations.AddField(
            model_name='documentationflag',
            name='access_site',
            field=models.ForeignKey(blank=True, null=True, on_delete=django.db.models.deletion.PROTECT, related_name='flags', to='charting.accesssite'),
        ),
        migrations.AddField(
            model_name='documentationflag',
            name='encounter',
            field=models.ForeignKey(null=True, on_delete=django.db.models.deletion.PROTECT, related_name='flags', to='charting.encounter'),
        ),
        migrations.RunPython(fill_encounter, migrations.RunPython.noop),
        migrations.AlterField(
            model_name='documentationflag',
            name='encounter',
            field=models.ForeignKey(on_delete=django.db.models.deletion.PROTECT, related_name='flags', to='charting.encounter'),
        ),
        migrations.AddField(
            model_name='documentationflag',
            name='field',
            field=models.CharField(blank=True, help_text='The charted field that closes the gap.', max_length=40),
        ),
        migrations.AlterField(
            model_name='documentationflag',
            name='administration',
            field=models.ForeignKey(blank=True, null=True, on_delete=django.db.models.deletion.PROTECT, related_name='flags', to='charting.administration'),
        ),
        migrations.AlterField(
            model_name='documentationflag',
            name='created_at',
            field=models.DateTimeField(default=django.utils.timezone.now),
        ),
        migrations.AlterField(
            model_name='documentationflag',
            name='kind',
            field=models.CharField(choices=[('still_running', 'Stop time missing'), ('no_access_site', 'Access site missing'), ('hydration_no_indication', 'Hydration without an indication'), ('dose_missing', 'Dose or unit missing'), ('waste_unconfirmed', 'Waste not confirmed'), ('ndc_lot_missing', 'NDC or lot missing'), ('pause_not_resumed', 'Pause never resumed'), ('late_entry', 'Late entry without a reason'), ('overlap_same_site', 'Overlap on one site'), ('second_site_no_reason', 'Second site without a reason'), ('not_signed', 'Not signed by the end of the day'), ('em_not_separate', 'E/M without the separate-work note')], max_length=40),
        ),
        migrations.AlterField(
            model_name='documentationflag',
            name='message',
            field=models.CharField(help_text="In the nurse's words, as the check wrote it.", max_length=300),
        ),
        migrations.AddIndex(
            model_name='documentationflag',
            index=models.Index(condition=models.Q(('resolved_at__isnull', True)), fields=['encounter'], name='flag_open_by_encounter'),
        ),
        migrations.AddConstraint(
            model_name='documentationflag',
            constraint=models.CheckConstraint(condition=models.Q(('kind__in', ['still_running', 'no_access_site', 'hydration_no_indication', 'dose_missing', 'waste_unconfirmed', 'ndc_lot_missing', 'pause_not_resumed', 'late_entry', 'overlap_same_site', 'second_site_no_reason', 'not_signed', 'em_not_separate'])), name='flag_kind_valid', violation_error_message='Unknown flag kind.'),
        ),
        migrations.AddConstraint(
            model_name='documentationflag',
            constraint=models.CheckConstraint(condition=models.Q(models.Q(('access_site__isnull', True), ('administration__isnull', False), ('kind__in', ('still_running', 'no_access_site', 'hydration_no_indication', 'dose_missing', 'waste_unconfirmed', 'ndc_lot_missing', 'pause_not_resumed', 'late_entry', 'overlap_same_site'))), models.Q(('access_site__isnull', False), ('administration__isnull', True), ('kind__in', ('second_site_no_reason',))), models.Q(('access_site__isnull', True), ('administration__isnull', True), ('kind__in', ('not_signed', 'em_not_separate'))), _connector='OR'), name='flag_target_matches_kind', violation_error_message='This kind of flag points at another kind of record.'),
        ),
        migrations.AddConstraint(
            model_name='documentationflag',
            constraint=models.CheckConstraint(condition=models.Q(('resolved_at__isnull', True), ('resolved_at__gte', models.F('created_at')), _connector='OR'), name='flag_resolved_after_created', violation_error_message='A flag cannot be resolved before it was raised.'),
        ),
        migrations.AddConstraint(
            model_name='documentationflag',
            constraint=models.UniqueConstraint(condition=models.Q(('administration__isnull', False), ('resolved_at__isnull', True)), fields=('administration', 'kind'), name='flag_one_open_per_record_kind', violation_error_message='This record already has an open flag of this kind.'),
        ),
        migrations.AddConstraint(
            model_name='documentationflag',
            constraint=models.UniqueConstraint(condition=models.Q(('access_site__isnull', False), ('resolved_at__isnull', True)), fields=('access_site', 'kind'), name='flag_one_open_per_site_kind', violation_error_message='This access site already has an open flag of this kind.'),
        ),
        migrations.AddConstraint(
            model_name='documentationflag',
            constraint=models.UniqueConstraint(condition=models.Q(('access_site__isnull', True), ('administration__isnull', True), ('resolved_at__isnull', True)), fields=('encounter', 'kind'), name='flag_one_open_per_encounter_kind', violation_error_message='This encounter already has an open flag of this kind.'),
        ),
        migrations.AddConstraint(
            model_name='sweeprun',
            constraint=models.UniqueConstraint(fields=('period_start',), name='sweep_run_one_per_period', violation_error_message='This period has been swept already.'),
        ),
        migrations.AddConstraint(
            model_name='sweeprun',
            constraint=models.CheckConstraint(condition=models.Q(('finished_at__gte', models.F('started_at'))), name='sweep_run_finished_after_start', violation_error_message='A sweep cannot finish before it starts.'),
        ),
    ]
